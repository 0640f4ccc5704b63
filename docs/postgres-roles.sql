-- se-flow on PostgreSQL: three database roles, so the log is append-only for the application
-- itself (the append-only triggers stay as a second line). Replace the names if you like.
--
--   se_flow_owner  owns the tables and runs migrations (start se-flow as it after an upgrade)
--   se_flow_app    what se-flow runs as every day: SELECT and INSERT on the log (events,
--                  records), never UPDATE, DELETE or TRUNCATE there
--   se_flow_audit  reads the log and its projections for `se-flow audit verify`; no personal data
--
-- Part 1, as a superuser, once: the roles and the database (UTF8: the audit hash covers UTF-8).
-- Give each role a password afterwards (\password se_flow_app in psql).

CREATE ROLE se_flow_owner LOGIN;
CREATE ROLE se_flow_app LOGIN;
CREATE ROLE se_flow_audit LOGIN;
CREATE DATABASE se_flow OWNER se_flow_owner ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE se_flow FROM PUBLIC;
GRANT CONNECT ON DATABASE se_flow TO se_flow_owner, se_flow_app, se_flow_audit;

-- Then create the tables and the first admin, as the owner:
--   se-flow --db postgresql://se_flow_owner@HOST/se_flow --as YOUR_ID init --name "Your Name"
--
-- ==== Part 2, connected to se_flow as se_flow_owner, after that first start (and again after a
-- migration that adds a table):

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO se_flow_app, se_flow_audit;

-- The log: appended to, never changed.
GRANT SELECT, INSERT ON events, records TO se_flow_app;
-- Projections of the log (their triggers let a row change only with the event saying so) and
-- the chain head every append moves on.
GRANT SELECT, INSERT, UPDATE ON staff, cases, chain_head TO se_flow_app;
GRANT SELECT, INSERT ON participants TO se_flow_app;
-- Personal data lives apart from the log; erasing a participant's deletes their row.
GRANT SELECT, INSERT, DELETE ON personal_data TO se_flow_app;
GRANT SELECT ON meta, se_flow_schema TO se_flow_app;
-- Forward-secure seals are appended with their events; the settings row changes only with an
-- admin's `setting` event (both since schema version 2).
GRANT SELECT, INSERT ON seals TO se_flow_app;
GRANT SELECT, INSERT, UPDATE ON settings TO se_flow_app;
-- Free texts apart from the log: written with their event, cleared (never deleted) only by the
-- erasure event naming them (the triggers refuse anything else).
GRANT SELECT, INSERT, UPDATE ON texts TO se_flow_app;
-- The due table (schema version 7): each case's deadlines, worked out again by the writes that
-- can change them (a row replaced or dropped as the case's history moves on); `verify`
-- replays it from the log.
GRANT SELECT, INSERT, UPDATE, DELETE ON due_index TO se_flow_app;

-- Auditors: everything the chain covers, nothing of personal_data.
GRANT SELECT ON events, records, staff, cases, participants, chain_head, meta, se_flow_schema,
    seals, settings TO se_flow_audit;
-- `verify` proves every free text against its hash, so it reads them; se-flow itself still
-- shows an auditor `(withheld)` until an admin grants the texts.
GRANT SELECT ON texts TO se_flow_audit;
GRANT SELECT ON due_index TO se_flow_audit;
