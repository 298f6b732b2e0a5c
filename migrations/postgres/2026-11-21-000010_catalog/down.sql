DROP TABLE cart_items;
DROP TABLE carts;
DROP TABLE seasonal_prices;
DROP TABLE product_tags;
DROP TABLE products;
