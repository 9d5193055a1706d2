-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d).
-- One database per service, each with two roles as on the cluster (deploy/k8s/base/postgres):
-- `<db>_owner` owns it and runs the migrations (MIGRATION_DATABASE_URL), `<db>` is the
-- service's run-time role (DATABASE_URL), which the migrations grant reading and writing the
-- tables. Only those two connect to the database. Local passwords: the role's name.
-- The superuser "guichet" (POSTGRES_USER) is for the developer's psql only.
CREATE ROLE intake_owner LOGIN PASSWORD 'intake_owner';
CREATE ROLE intake LOGIN PASSWORD 'intake';
CREATE DATABASE intake OWNER intake_owner;
REVOKE ALL ON DATABASE intake FROM PUBLIC;
GRANT CONNECT ON DATABASE intake TO intake;
CREATE ROLE assignment_owner LOGIN PASSWORD 'assignment_owner';
CREATE ROLE assignment LOGIN PASSWORD 'assignment';
CREATE DATABASE assignment OWNER assignment_owner;
REVOKE ALL ON DATABASE assignment FROM PUBLIC;
GRANT CONNECT ON DATABASE assignment TO assignment;
CREATE ROLE notification_owner LOGIN PASSWORD 'notification_owner';
CREATE ROLE notification LOGIN PASSWORD 'notification';
CREATE DATABASE notification OWNER notification_owner;
REVOKE ALL ON DATABASE notification FROM PUBLIC;
GRANT CONNECT ON DATABASE notification TO notification;
CREATE ROLE adapter_caf_owner LOGIN PASSWORD 'adapter_caf_owner';
CREATE ROLE adapter_caf LOGIN PASSWORD 'adapter_caf';
CREATE DATABASE adapter_caf OWNER adapter_caf_owner;
REVOKE ALL ON DATABASE adapter_caf FROM PUBLIC;
GRANT CONNECT ON DATABASE adapter_caf TO adapter_caf;
CREATE ROLE adapter_dgfip_owner LOGIN PASSWORD 'adapter_dgfip_owner';
CREATE ROLE adapter_dgfip LOGIN PASSWORD 'adapter_dgfip';
CREATE DATABASE adapter_dgfip OWNER adapter_dgfip_owner;
REVOKE ALL ON DATABASE adapter_dgfip FROM PUBLIC;
GRANT CONNECT ON DATABASE adapter_dgfip TO adapter_dgfip;
CREATE ROLE adapter_france_travail_owner LOGIN PASSWORD 'adapter_france_travail_owner';
CREATE ROLE adapter_france_travail LOGIN PASSWORD 'adapter_france_travail';
CREATE DATABASE adapter_france_travail OWNER adapter_france_travail_owner;
REVOKE ALL ON DATABASE adapter_france_travail FROM PUBLIC;
GRANT CONNECT ON DATABASE adapter_france_travail TO adapter_france_travail;
CREATE ROLE adapter_cpam_owner LOGIN PASSWORD 'adapter_cpam_owner';
CREATE ROLE adapter_cpam LOGIN PASSWORD 'adapter_cpam';
CREATE DATABASE adapter_cpam OWNER adapter_cpam_owner;
REVOKE ALL ON DATABASE adapter_cpam FROM PUBLIC;
GRANT CONNECT ON DATABASE adapter_cpam TO adapter_cpam;
CREATE ROLE adapter_ants_owner LOGIN PASSWORD 'adapter_ants_owner';
CREATE ROLE adapter_ants LOGIN PASSWORD 'adapter_ants';
CREATE DATABASE adapter_ants OWNER adapter_ants_owner;
REVOKE ALL ON DATABASE adapter_ants FROM PUBLIC;
GRANT CONNECT ON DATABASE adapter_ants TO adapter_ants;
CREATE ROLE web_owner LOGIN PASSWORD 'web_owner';
CREATE ROLE web LOGIN PASSWORD 'web';
CREATE DATABASE web OWNER web_owner;
REVOKE ALL ON DATABASE web FROM PUBLIC;
GRANT CONNECT ON DATABASE web TO web;
