DELETE FROM config;
INSERT INTO config VALUES('n_classes', '-7');
