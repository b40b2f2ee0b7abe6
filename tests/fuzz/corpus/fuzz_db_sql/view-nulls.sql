DROP VIEW run_accuracy;
CREATE VIEW run_accuracy AS SELECT NULL AS run_id, NULL AS method, NULL AS temperature, NULL AS seed, 'done' AS status, NULL AS final_acc, NULL AS best_acc, NULL AS best_epoch;
