DROP TABLE reviews;
DROP TABLE purchases;
DROP TABLE listings;
DROP TABLE characters;
DROP TABLE workspaces;
