DROP TABLE sessions;
DROP TABLE otp_challenges;
DROP TABLE api_keys;
