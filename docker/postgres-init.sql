-- The database the test suite uses.
CREATE DATABASE test;
