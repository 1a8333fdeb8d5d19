/* Migration 18 on both drivers: each label group's members and held hosts
 * (COORD_HELD_SQL), which a lease decision's budget check reads instead of
 * the group's hosts (COORD_GROUP_UNAVAILABLE_SQL), kept by triggers in the
 * statement that changes a label or a host, counted afresh from the
 * labels a store already has; and the index of the silent hosts
 * (COORD_SILENT_SQL). A host's labels go after its row when it is deleted
 * (the cascade runs after the row's delete on both), so the row's delete
 * takes its held mark off their groups first (a BEFORE trigger) and a
 * label's delete takes off only the mark of a host still there. A group
 * whose last member goes loses its row. */
#pragma once

#include "store-coord-sql.h"

/* The sqlite triggers move one host_labels row out of its group's counts
 * (OLD) and into its new group's (NEW). */
#define GROUPS_REMOVE_OLD                                                                               \
        "  UPDATE group_counts SET members = members - 1, held = held - coalesce((SELECT "              \
        COORD_HELD_SQL("h") " FROM hosts h WHERE h.id = OLD.host_id), 0)"                               \
        "  WHERE key = OLD.key AND value = OLD.value;"                                                  \
        "  DELETE FROM group_counts WHERE key = OLD.key AND value = OLD.value AND members = 0;"
#define GROUPS_ADD_NEW                                                                                  \
        "  INSERT INTO group_counts VALUES (NEW.key, NEW.value, 1, coalesce((SELECT " COORD_HELD_SQL("h") \
        " FROM hosts h WHERE h.id = NEW.host_id), 0))"                                                  \
        "  ON CONFLICT (key, value) DO UPDATE SET members = members + 1, held = held + excluded.held;"

/* sqlite: the table, its rows for the labels there are, the index, and
 * the triggers. */
#define GROUP_COUNTS_SQLITE                                                                             \
        "CREATE TABLE group_counts (key TEXT NOT NULL, value TEXT NOT NULL, members INTEGER NOT NULL,"  \
        "  held INTEGER NOT NULL, PRIMARY KEY (key, value)) WITHOUT ROWID;"                             \
        "INSERT INTO group_counts SELECT l.key, l.value, count(*), sum(" COORD_HELD_SQL("h") ") FROM host_labels l" \
        "  JOIN hosts h ON h.id = l.host_id GROUP BY l.key, l.value;"                                   \
        "CREATE INDEX hosts_silent ON hosts(coalesce(last_seen, 0)) WHERE mac IS NOT NULL;"             \
        "CREATE TRIGGER group_counts_label_insert AFTER INSERT ON host_labels BEGIN"                    \
        GROUPS_ADD_NEW                                                                                  \
        "END;"                                                                                          \
        "CREATE TRIGGER group_counts_label_delete AFTER DELETE ON host_labels BEGIN"                    \
        GROUPS_REMOVE_OLD                                                                               \
        "END;"                                                                                          \
        "CREATE TRIGGER group_counts_label_update AFTER UPDATE OF host_id, key, value ON host_labels"   \
        "  WHEN OLD.host_id IS NOT NEW.host_id OR OLD.key IS NOT NEW.key OR OLD.value IS NOT NEW.value BEGIN" \
        GROUPS_REMOVE_OLD                                                                               \
        GROUPS_ADD_NEW                                                                                  \
        "END;"                                                                                          \
        "CREATE TRIGGER group_counts_host_update AFTER UPDATE OF lease_epoch, quarantined, state ON hosts" \
        "  WHEN " COORD_HELD_SQL("OLD") " IS NOT " COORD_HELD_SQL("NEW") " BEGIN"                       \
        "  UPDATE group_counts SET held = held + " COORD_HELD_SQL("NEW") " - " COORD_HELD_SQL("OLD")    \
        "  WHERE (key, value) IN (SELECT key, value FROM host_labels WHERE host_id = NEW.id);"          \
        "END;"                                                                                          \
        "CREATE TRIGGER group_counts_host_delete BEFORE DELETE ON hosts WHEN " COORD_HELD_SQL("OLD") " BEGIN" \
        "  UPDATE group_counts SET held = held - 1"                                                     \
        "  WHERE (key, value) IN (SELECT key, value FROM host_labels WHERE host_id = OLD.id);"          \
        "END;"

/* PostgreSQL: the same, the triggers as PL/pgSQL functions. */
#define GROUP_COUNTS_PG                                                                                 \
        "CREATE TABLE group_counts (key TEXT COLLATE \"C\" NOT NULL, value TEXT COLLATE \"C\" NOT NULL,\n" \
        "  members BIGINT NOT NULL, held BIGINT NOT NULL, PRIMARY KEY (key, value));\n"                 \
        "INSERT INTO group_counts SELECT l.key, l.value, count(*), count(*) FILTER (WHERE " COORD_HELD_SQL("h") ")\n" \
        "  FROM host_labels l JOIN hosts h ON h.id = l.host_id GROUP BY l.key, l.value;\n"              \
        "CREATE INDEX hosts_silent ON hosts(coalesce(last_seen, 0)) WHERE mac IS NOT NULL;\n"           \
        "CREATE FUNCTION group_counts_label() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN\n"          \
        "  IF TG_OP IN ('UPDATE', 'DELETE') THEN\n"                                                     \
        "    UPDATE group_counts g SET members = g.members - 1, held = g.held - coalesce((SELECT\n"     \
        "      (" COORD_HELD_SQL("h") ")::int FROM hosts h WHERE h.id = OLD.host_id), 0)\n"             \
        "      WHERE g.key = OLD.key AND g.value = OLD.value;\n"                                        \
        "    DELETE FROM group_counts g WHERE g.key = OLD.key AND g.value = OLD.value AND g.members = 0;\n" \
        "  END IF;\n"                                                                                   \
        "  IF TG_OP IN ('UPDATE', 'INSERT') THEN\n"                                                     \
        "    INSERT INTO group_counts AS g VALUES (NEW.key, NEW.value, 1, coalesce((SELECT\n"           \
        "      (" COORD_HELD_SQL("h") ")::int FROM hosts h WHERE h.id = NEW.host_id), 0))\n"            \
        "      ON CONFLICT (key, value) DO UPDATE SET members = g.members + 1, held = g.held + excluded.held;\n" \
        "  END IF;\n"                                                                                   \
        "  RETURN NULL;\n"                                                                              \
        "END $f$;\n"                                                                                    \
        "CREATE TRIGGER group_counts_label_change AFTER UPDATE OF host_id, key, value ON host_labels FOR EACH ROW\n" \
        "  WHEN (OLD.host_id <> NEW.host_id OR OLD.key <> NEW.key OR OLD.value <> NEW.value)\n"         \
        "  EXECUTE FUNCTION group_counts_label();\n"                                                    \
        "CREATE TRIGGER group_counts_label_add_remove AFTER INSERT OR DELETE ON host_labels\n"          \
        "  FOR EACH ROW EXECUTE FUNCTION group_counts_label();\n"                                       \
        "CREATE FUNCTION group_counts_host() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN\n"           \
        "  IF TG_OP = 'DELETE' THEN\n"                                                                  \
        "    UPDATE group_counts g SET held = g.held - 1 FROM host_labels l\n"                          \
        "      WHERE l.host_id = OLD.id AND g.key = l.key AND g.value = l.value;\n"                     \
        "    RETURN OLD;\n"                                                                             \
        "  END IF;\n"                                                                                   \
        "  UPDATE group_counts g SET held = g.held + (" COORD_HELD_SQL("NEW") ")::int - (" COORD_HELD_SQL("OLD") ")::int\n" \
        "    FROM host_labels l WHERE l.host_id = NEW.id AND g.key = l.key AND g.value = l.value;\n"    \
        "  RETURN NULL;\n"                                                                              \
        "END $f$;\n"                                                                                    \
        "CREATE TRIGGER group_counts_host_change AFTER UPDATE OF lease_epoch, quarantined, state ON hosts\n" \
        "  FOR EACH ROW WHEN (" COORD_HELD_SQL("OLD") " IS DISTINCT FROM " COORD_HELD_SQL("NEW") ")\n"  \
        "  EXECUTE FUNCTION group_counts_host();\n"                                                     \
        "CREATE TRIGGER group_counts_host_delete BEFORE DELETE ON hosts FOR EACH ROW\n"                 \
        "  WHEN " COORD_HELD_SQL("OLD") " EXECUTE FUNCTION group_counts_host();\n"
