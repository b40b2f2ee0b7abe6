DROP TABLE correlations;
DROP VIEW run_accuracy;
