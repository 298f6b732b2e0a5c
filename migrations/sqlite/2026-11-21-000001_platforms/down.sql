DROP TABLE waitlist_entries;
DROP TABLE platforms;
