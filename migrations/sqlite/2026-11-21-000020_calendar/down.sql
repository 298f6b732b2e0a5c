DROP TABLE calendar_events;
DROP TABLE calendar_availability;
DROP TABLE calendars;
