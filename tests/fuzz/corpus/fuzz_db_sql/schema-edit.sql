PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, 'label INTEGER NOT NULL', 'label') WHERE name = 'samples';
PRAGMA writable_schema = OFF;
UPDATE samples SET label = NULL WHERE sample_idx = 5;
