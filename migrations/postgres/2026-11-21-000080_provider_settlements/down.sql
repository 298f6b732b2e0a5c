DROP TABLE provider_settlements;
