DROP TABLE user_payment_methods;
