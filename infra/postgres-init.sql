-- The Prefect server keeps its own database beside SearchFlow's on the compose Postgres.
CREATE DATABASE prefect;
