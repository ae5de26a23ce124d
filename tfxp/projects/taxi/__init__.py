"""The Chicago taxi project: data/taxi.csv (15,002 rows), schema.pbtxt, the big-tipper label."""
