DROP TABLE subscription_charges;
DROP TABLE subscription_sellers;
DROP TABLE subscriptions;
