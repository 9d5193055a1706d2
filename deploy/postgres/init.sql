-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d).
-- One database per service; all owned by the "guichet" role created from POSTGRES_USER.
CREATE DATABASE intake OWNER guichet;
CREATE DATABASE assignment OWNER guichet;
CREATE DATABASE notification OWNER guichet;
CREATE DATABASE adapter_caf OWNER guichet;
CREATE DATABASE adapter_dgfip OWNER guichet;
CREATE DATABASE adapter_france_travail OWNER guichet;
CREATE DATABASE adapter_cpam OWNER guichet;
CREATE DATABASE adapter_ants OWNER guichet;
