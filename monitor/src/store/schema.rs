//! The schema as an ordered list of migrations; `PRAGMA user_version` records how many ran.
//! Never edit a migration that shipped: add the next one.
//!
//! Conventions: times are ns since the Unix epoch (INTEGER); a missing VLAN is -1, so that
//! the VLAN columns can sit in primary keys (NULLs never compare equal there); addresses are
//! text in their usual notation; evidence and details are JSON text.

pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE devices (
        ifindex      INTEGER NOT NULL,
        outer_vlan   INTEGER NOT NULL,
        inner_vlan   INTEGER NOT NULL,
        ip           TEXT    NOT NULL,
        mac          TEXT    NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        source       TEXT    NOT NULL,
        hostname     TEXT,
        lease_server TEXT,
        lease_secs   INTEGER,
        lease_expires INTEGER,
        prev_mac     TEXT,
        prev_until   INTEGER,
        mac_changes  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ifindex, outer_vlan, inner_vlan, ip)
    );
    CREATE TABLE dhcp_servers (
        ifindex      INTEGER NOT NULL,
        outer_vlan   INTEGER NOT NULL,
        inner_vlan   INTEGER NOT NULL,
        server_id    TEXT    NOT NULL,
        mac          TEXT    NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        offers       INTEGER NOT NULL,
        acks         INTEGER NOT NULL,
        naks         INTEGER NOT NULL,
        lowest_offered  TEXT,
        highest_offered TEXT,
        recent_offers   TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (ifindex, outer_vlan, inner_vlan, server_id, mac)
    );
    CREATE TABLE findings (
        kind       TEXT    NOT NULL,
        subject    TEXT    NOT NULL,
        opened     INTEGER NOT NULL,
        ifindex    INTEGER NOT NULL,
        outer_vlan INTEGER NOT NULL,
        inner_vlan INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        closed     INTEGER,
        packets    INTEGER NOT NULL,
        quiet_ns   INTEGER NOT NULL,
        evidence   TEXT    NOT NULL,
        PRIMARY KEY (kind, subject, opened)
    );
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY,
        ts         INTEGER NOT NULL,
        kind       TEXT    NOT NULL,
        ifindex    INTEGER NOT NULL,
        outer_vlan INTEGER NOT NULL,
        inner_vlan INTEGER NOT NULL,
        ip         TEXT,
        mac        TEXT    NOT NULL,
        detail     TEXT
    );",
    // 2: indexes for the API's queries and for retention, and a place for agent facts.
    "CREATE INDEX events_ts ON events (ts);
    CREATE INDEX findings_closed ON findings (closed);
    CREATE INDEX devices_last_seen ON devices (last_seen);
    CREATE INDEX devices_mac ON devices (mac);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 3: devices clustered on their key (WITHOUT ROWID): one B-tree per write instead of the
    // table, its key index, and the last_seen and mac indexes. last_seen moved on every write
    // and only the once-a-minute cap and the start-up load sort by it; nothing reads by MAC
    // (the API answers that from memory). A storm writes a device per station: this halves
    // the store's cost.
    "CREATE TABLE devices_v3 (
        ifindex      INTEGER NOT NULL,
        outer_vlan   INTEGER NOT NULL,
        inner_vlan   INTEGER NOT NULL,
        ip           TEXT    NOT NULL,
        mac          TEXT    NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        source       TEXT    NOT NULL,
        hostname     TEXT,
        lease_server TEXT,
        lease_secs   INTEGER,
        lease_expires INTEGER,
        prev_mac     TEXT,
        prev_until   INTEGER,
        mac_changes  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ifindex, outer_vlan, inner_vlan, ip)
    ) WITHOUT ROWID;
    INSERT INTO devices_v3 SELECT ifindex, outer_vlan, inner_vlan, ip, mac, first_seen,
        last_seen, source, hostname, lease_server, lease_secs, lease_expires, prev_mac,
        prev_until, mac_changes FROM devices;
    DROP TABLE devices;
    ALTER TABLE devices_v3 RENAME TO devices;",
    // 4: interfaces by name. An ifindex changes when a device is re-created and on reboot,
    // so rows keyed by it landed on the wrong interface or were orphaned. Each old index
    // becomes the name the kernel has for it now (`temp.ifnames`, filled in by the store
    // before it migrates), or `ifindex-N` for one that is gone; finding subjects that began
    // with `ifN` get the name too.
    "CREATE TABLE devices_v4 (
        interface    TEXT    NOT NULL,
        outer_vlan   INTEGER NOT NULL,
        inner_vlan   INTEGER NOT NULL,
        ip           TEXT    NOT NULL,
        mac          TEXT    NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        source       TEXT    NOT NULL,
        hostname     TEXT,
        lease_server TEXT,
        lease_secs   INTEGER,
        lease_expires INTEGER,
        prev_mac     TEXT,
        prev_until   INTEGER,
        mac_changes  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (interface, outer_vlan, inner_vlan, ip)
    ) WITHOUT ROWID;
    INSERT OR REPLACE INTO devices_v4 SELECT
        COALESCE((SELECT name FROM temp.ifnames n WHERE n.ifindex = d.ifindex),
                 'ifindex-' || d.ifindex),
        outer_vlan, inner_vlan, ip, mac, first_seen, last_seen, source, hostname,
        lease_server, lease_secs, lease_expires, prev_mac, prev_until, mac_changes
        FROM devices d;
    DROP TABLE devices;
    ALTER TABLE devices_v4 RENAME TO devices;
    CREATE TABLE dhcp_servers_v4 (
        interface    TEXT    NOT NULL,
        outer_vlan   INTEGER NOT NULL,
        inner_vlan   INTEGER NOT NULL,
        server_id    TEXT    NOT NULL,
        mac          TEXT    NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        offers       INTEGER NOT NULL,
        acks         INTEGER NOT NULL,
        naks         INTEGER NOT NULL,
        lowest_offered  TEXT,
        highest_offered TEXT,
        recent_offers   TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (interface, outer_vlan, inner_vlan, server_id, mac)
    );
    INSERT OR REPLACE INTO dhcp_servers_v4 SELECT
        COALESCE((SELECT name FROM temp.ifnames n WHERE n.ifindex = s.ifindex),
                 'ifindex-' || s.ifindex),
        outer_vlan, inner_vlan, server_id, mac, first_seen, last_seen, offers, acks, naks,
        lowest_offered, highest_offered, recent_offers
        FROM dhcp_servers s;
    DROP TABLE dhcp_servers;
    ALTER TABLE dhcp_servers_v4 RENAME TO dhcp_servers;
    CREATE TABLE findings_v4 (
        kind       TEXT    NOT NULL,
        subject    TEXT    NOT NULL,
        opened     INTEGER NOT NULL,
        interface  TEXT    NOT NULL,
        outer_vlan INTEGER NOT NULL,
        inner_vlan INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        closed     INTEGER,
        packets    INTEGER NOT NULL,
        quiet_ns   INTEGER NOT NULL,
        evidence   TEXT    NOT NULL,
        PRIMARY KEY (kind, subject, opened)
    );
    INSERT OR REPLACE INTO findings_v4 SELECT kind,
        CASE WHEN subject = 'if' || ifindex
                  OR subject LIKE 'if' || ifindex || '/%'
                  OR subject LIKE 'if' || ifindex || ' %'
             THEN nm || substr(subject, length('if' || ifindex) + 1)
             ELSE subject END,
        opened, nm, outer_vlan, inner_vlan, last_seen, closed, packets, quiet_ns, evidence
        FROM (SELECT *, COALESCE((SELECT name FROM temp.ifnames i WHERE i.ifindex = f.ifindex),
                                 'ifindex-' || f.ifindex) AS nm FROM findings f);
    DROP TABLE findings;
    ALTER TABLE findings_v4 RENAME TO findings;
    CREATE INDEX findings_closed ON findings (closed);
    CREATE TABLE events_v4 (
        id         INTEGER PRIMARY KEY,
        ts         INTEGER NOT NULL,
        kind       TEXT    NOT NULL,
        interface  TEXT    NOT NULL,
        outer_vlan INTEGER NOT NULL,
        inner_vlan INTEGER NOT NULL,
        ip         TEXT,
        mac        TEXT    NOT NULL,
        detail     TEXT
    );
    INSERT INTO events_v4 SELECT id, ts, kind,
        COALESCE((SELECT name FROM temp.ifnames n WHERE n.ifindex = e.ifindex),
                 'ifindex-' || e.ifindex),
        outer_vlan, inner_vlan, ip, mac, detail FROM events e;
    DROP TABLE events;
    ALTER TABLE events_v4 RENAME TO events;
    CREATE INDEX events_ts ON events (ts);",
    // 5: IPv6 neighbours (one row per address), routers (their last advertisement as JSON)
    // and DHCPv6 servers by DUID (their counters and recent offers as JSON).
    "CREATE TABLE addresses6 (
        interface  TEXT    NOT NULL,
        outer_vlan INTEGER NOT NULL,
        inner_vlan INTEGER NOT NULL,
        ip         TEXT    NOT NULL,
        mac        TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        learnt     TEXT    NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        PRIMARY KEY (interface, outer_vlan, inner_vlan, ip)
    );
    CREATE TABLE routers6 (
        interface  TEXT    NOT NULL,
        outer_vlan INTEGER NOT NULL,
        inner_vlan INTEGER NOT NULL,
        ip         TEXT    NOT NULL,
        mac        TEXT    NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        adverts    INTEGER NOT NULL,
        retired_at INTEGER,
        last_ra    TEXT,
        PRIMARY KEY (interface, outer_vlan, inner_vlan, ip, mac)
    );
    CREATE TABLE dhcpv6_servers (
        interface  TEXT    NOT NULL,
        outer_vlan INTEGER NOT NULL,
        inner_vlan INTEGER NOT NULL,
        duid       TEXT    NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        detail     TEXT    NOT NULL,
        PRIMARY KEY (interface, outer_vlan, inner_vlan, duid)
    );",
    // 6: how a device booted and reached DHCP (PXE, architecture, boot offer, relay,
    // circuit), as JSON.
    "ALTER TABLE devices ADD COLUMN boot TEXT;",
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;
