UPDATE correlations SET criterion = 'b"v' || char(10) || '\', method = 'k"d' WHERE method = 'kd';
