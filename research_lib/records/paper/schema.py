"""The paper ledger's SQLite schema: the DDL of version 1, the migrations, and :data:`SCHEMA_VERSION`.

Version 1 (the first ledger): accounts, orders (legs as JSON with their quotes), fills, positions and their legs,
marks, closed trades, and equity snapshots of cash, positions and equity. Version 2 (:data:`MIGRATIONS` ``[1]``)
adds the simulated broker's journal (``broker_journal``), the per-strategy statistics kept with every close
(``strategy_stats``), and three columns of the equity snapshots (``open_risk``, ``realized_pnl``,
``unrealized_pnl``); the migration fills them for the rows already there from the closed trades and positions
(exact, see :func:`_migrate_1_to_2`) and builds the statistics from the closed trades.

Times are stored twice, as in the decision log: ``*_us`` integer microseconds since the epoch, UTC (ordering and
filters) and ``*_at`` ISO 8601 text in New York (for people reading the file with the ``sqlite3`` shell).

The rules the unique indexes enforce (whatever process writes):

* ``orders.client_order_id`` is unique;
* one position per open order (``positions.open_order_id`` unique);
* one closed trade per position (``closed_trades.position_id`` is its key);
* at most one close order ``submitted`` and at most one ``filled`` per position (partial unique indexes);
* one fill row per order leg, and per position, kind and leg.
"""

from __future__ import annotations

import sqlite3

from research_lib.records.sqlite import SCHEMA_VERSION_TABLE, Migrations

__all__ = ["DB_NAME", "MIGRATIONS", "SCHEMA_V1", "SCHEMA_VERSION", "TABLES"]

#: Schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = 2
#: File name of the ledger in the data root.
DB_NAME = "paper.sqlite"

SCHEMA_V1: tuple[str, ...] = (
    SCHEMA_VERSION_TABLE,
    """CREATE TABLE accounts (
        account_id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
        starting_cash REAL NOT NULL CHECK (starting_cash > 0),
        cash REAL NOT NULL,
        created_us INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE orders (
        order_id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL REFERENCES accounts (account_id),
        client_order_id TEXT NOT NULL CHECK (length(client_order_id) BETWEEN 1 AND 128),
        kind TEXT NOT NULL CHECK (kind IN ('open', 'close')),
        strategy TEXT NOT NULL,
        contracts INTEGER NOT NULL CHECK (contracts > 0),
        status TEXT NOT NULL CHECK (status IN ('submitted', 'filled', 'rejected')),
        legs TEXT NOT NULL,
        position_id INTEGER REFERENCES positions (position_id),
        max_loss REAL CHECK (max_loss IS NULL OR max_loss > 0),
        decision_id TEXT,
        reason TEXT,
        broker_order_id TEXT,
        reject_reason TEXT,
        created_us INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_us INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        CHECK (kind = 'open' OR position_id IS NOT NULL),
        CHECK (kind = 'close' OR status = 'filled' OR position_id IS NULL),
        CHECK ((status = 'filled') = (broker_order_id IS NOT NULL)),
        CHECK ((status = 'rejected') = (reject_reason IS NOT NULL))
    )""",
    "CREATE UNIQUE INDEX orders_by_client_id ON orders (client_order_id)",
    "CREATE INDEX orders_by_account ON orders (account_id, status)",
    "CREATE UNIQUE INDEX orders_one_open_close ON orders (position_id) WHERE kind = 'close' AND status = 'submitted'",
    "CREATE UNIQUE INDEX orders_one_filled_close ON orders (position_id) WHERE kind = 'close' AND status = 'filled'",
    """CREATE TABLE positions (
        position_id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL REFERENCES accounts (account_id),
        strategy TEXT NOT NULL,
        contracts INTEGER NOT NULL CHECK (contracts > 0),
        entry_price REAL NOT NULL,
        max_loss REAL CHECK (max_loss IS NULL OR max_loss > 0),
        opened_us INTEGER NOT NULL,
        opened_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        open_order_id INTEGER NOT NULL REFERENCES orders (order_id),
        commissions REAL NOT NULL CHECK (commissions >= 0),
        decision_id TEXT
    )""",
    "CREATE UNIQUE INDEX positions_one_per_order ON positions (open_order_id)",
    "CREATE INDEX positions_by_account ON positions (account_id, status)",
    """CREATE TABLE position_legs (
        position_id INTEGER NOT NULL REFERENCES positions (position_id),
        leg_index INTEGER NOT NULL CHECK (leg_index >= 0),
        root TEXT NOT NULL,
        expiration TEXT NOT NULL,
        settlement TEXT NOT NULL CHECK (settlement IN ('AM', 'PM')),
        strike REAL NOT NULL CHECK (strike > 0),
        right TEXT NOT NULL CHECK (right IN ('C', 'P')),
        quantity INTEGER NOT NULL CHECK (quantity != 0),
        entry_fill REAL NOT NULL CHECK (entry_fill >= 0),
        entry_bid REAL NOT NULL,
        entry_ask REAL NOT NULL,
        PRIMARY KEY (position_id, leg_index)
    )""",
    """CREATE TABLE fills (
        fill_id INTEGER PRIMARY KEY AUTOINCREMENT,
        position_id INTEGER NOT NULL REFERENCES positions (position_id),
        order_id INTEGER REFERENCES orders (order_id),
        kind TEXT NOT NULL CHECK (kind IN ('open', 'close', 'settlement')),
        leg_index INTEGER NOT NULL CHECK (leg_index >= 0),
        quantity INTEGER NOT NULL CHECK (quantity != 0),
        contracts INTEGER NOT NULL CHECK (contracts > 0),
        price REAL NOT NULL CHECK (price >= 0),
        commission REAL NOT NULL CHECK (commission >= 0),
        cash_flow REAL NOT NULL,
        bid REAL,
        ask REAL,
        quote_us INTEGER,
        source TEXT NOT NULL,
        filled_us INTEGER NOT NULL,
        filled_at TEXT NOT NULL,
        broker_order_id TEXT,
        model TEXT NOT NULL,
        CHECK ((kind = 'settlement') = (order_id IS NULL))
    )""",
    "CREATE UNIQUE INDEX fills_one_per_leg ON fills (position_id, kind, leg_index)",
    "CREATE INDEX fills_by_order ON fills (order_id)",
    """CREATE TABLE marks (
        mark_id INTEGER PRIMARY KEY AUTOINCREMENT,
        position_id INTEGER NOT NULL REFERENCES positions (position_id),
        marked_us INTEGER NOT NULL,
        marked_at TEXT NOT NULL,
        source TEXT NOT NULL,
        mark REAL,
        mark_natural REAL,
        unrealized_pnl REAL,
        pnl_pct REAL,
        dte INTEGER NOT NULL,
        leg_mids TEXT NOT NULL,
        missing TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX marks_by_position ON marks (position_id, marked_us)",
    """CREATE TABLE closed_trades (
        position_id INTEGER PRIMARY KEY REFERENCES positions (position_id),
        close_order_id INTEGER REFERENCES orders (order_id),
        closed_us INTEGER NOT NULL,
        closed_at TEXT NOT NULL,
        exit_price REAL NOT NULL,
        exit_reason TEXT NOT NULL,
        exit_kind TEXT NOT NULL CHECK (exit_kind IN ('fill', 'settlement')),
        realized_pnl REAL NOT NULL,
        commissions REAL NOT NULL CHECK (commissions >= 0),
        return_on_risk REAL,
        exit_decision_id TEXT,
        note TEXT,
        CHECK ((exit_kind = 'fill') = (close_order_id IS NOT NULL))
    )""",
    """CREATE TABLE equity (
        snapshot_id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL REFERENCES accounts (account_id),
        at_us INTEGER NOT NULL,
        at TEXT NOT NULL,
        cash REAL NOT NULL,
        positions_value REAL NOT NULL,
        equity REAL NOT NULL
    )""",
    "CREATE INDEX equity_by_account ON equity (account_id, at_us)",
)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 → 2, keeping every row.

    * ``broker_journal``: the simulated broker's executions by client order id (empty: version 1 had none).
    * ``strategy_stats``: per account and strategy, built from the closed trades already there.
    * ``equity.open_risk``, ``realized_pnl``, ``unrealized_pnl``, filled for the snapshots already there:
      ``realized_pnl`` is the account's closed trades' realised P&L up to the snapshot's time, ``open_risk`` the
      max loss × contracts of the positions open then (opened at or before it, not closed by it), and
      ``unrealized_pnl`` follows from the identity ``equity = starting cash + realized + unrealized − the entry
      commissions of the open positions`` (the ledger's cash conventions).
    """
    for stmt in _V2_TABLES:
        conn.execute(stmt)
    for col in ("open_risk", "realized_pnl", "unrealized_pnl"):
        conn.execute(f"ALTER TABLE equity ADD COLUMN {col} REAL")
    open_then = ("FROM positions p LEFT JOIN closed_trades c ON c.position_id = p.position_id "
                 "WHERE p.account_id = e.account_id AND p.opened_us <= e.at_us "
                 "AND (c.closed_us IS NULL OR c.closed_us > e.at_us)")
    conn.execute(f"""UPDATE equity AS e SET
        realized_pnl = (SELECT coalesce(sum(c.realized_pnl), 0) FROM closed_trades c
                        JOIN positions p ON p.position_id = c.position_id
                        WHERE p.account_id = e.account_id AND c.closed_us <= e.at_us),
        open_risk = (SELECT coalesce(sum(coalesce(p.max_loss, 0) * p.contracts), 0) {open_then}),
        unrealized_pnl = e.equity - (SELECT starting_cash FROM accounts a WHERE a.account_id = e.account_id)
            - (SELECT coalesce(sum(c.realized_pnl), 0) FROM closed_trades c
               JOIN positions p ON p.position_id = c.position_id
               WHERE p.account_id = e.account_id AND c.closed_us <= e.at_us)
            + (SELECT coalesce(sum(f.commission), 0) FROM fills f WHERE f.kind = 'open' AND f.position_id IN
               (SELECT p.position_id {open_then}))""")
    for stmt in REBUILD_STATS_SQL:
        conn.execute(stmt)


#: Tables added by version 2.
_V2_TABLES: tuple[str, ...] = (
    """CREATE TABLE broker_journal (
        client_order_id TEXT PRIMARY KEY,
        broker_order_id TEXT NOT NULL,
        legs TEXT NOT NULL,
        filled_us INTEGER NOT NULL,
        filled_at TEXT NOT NULL,
        model TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    )""",
    """CREATE TABLE strategy_stats (
        account_id INTEGER NOT NULL REFERENCES accounts (account_id),
        strategy TEXT NOT NULL,
        n_trades INTEGER NOT NULL CHECK (n_trades >= 0),
        n_rated INTEGER NOT NULL CHECK (n_rated >= 0),
        wins INTEGER NOT NULL CHECK (wins >= 0),
        sum_win REAL NOT NULL,
        sum_loss REAL NOT NULL,
        total_pnl REAL NOT NULL,
        PRIMARY KEY (account_id, strategy)
    )""",
)

#: The statistics of every account and strategy recomputed from the closed trades, as rows of
#: ``(account_id, strategy, n_trades, n_rated, wins, sum_win, sum_loss, total_pnl)``: ``n_rated`` counts the
#: trades with a known return on risk (a max loss), ``wins``, ``sum_win`` (Σ return on risk of the winners) and
#: ``sum_loss`` (Σ |return on risk| of the others, scratches included) are over those.
STATS_SELECT_SQL = """SELECT p.account_id, p.strategy, count(*),
        count(c.return_on_risk),
        coalesce(sum(c.return_on_risk > 0), 0),
        coalesce(sum(CASE WHEN c.return_on_risk > 0 THEN c.return_on_risk ELSE 0.0 END), 0.0),
        coalesce(sum(CASE WHEN c.return_on_risk <= 0 THEN -c.return_on_risk ELSE 0.0 END), 0.0),
        coalesce(sum(c.realized_pnl), 0.0)
    FROM closed_trades c JOIN positions p ON p.position_id = c.position_id
    GROUP BY p.account_id, p.strategy"""

#: Replace the statistics table's rows by the recomputed ones (:data:`STATS_SELECT_SQL`).
REBUILD_STATS_SQL: tuple[str, ...] = (
    "DELETE FROM strategy_stats",
    "INSERT INTO strategy_stats (account_id, strategy, n_trades, n_rated, wins, sum_win, sum_loss, total_pnl) "
    + STATS_SELECT_SQL,
)

#: ``MIGRATIONS[v]`` takes a ledger from schema v to v + 1 (SQL statements, or a callable given the connection,
#: inside the upgrade transaction).
MIGRATIONS: Migrations = {1: _migrate_1_to_2}

#: The tables of the current schema (a file holding other tables and no version is not a ledger).
TABLES: tuple[str, ...] = ("schema_version", "accounts", "orders", "positions", "position_legs", "fills", "marks",
                           "closed_trades", "equity", "broker_journal", "strategy_stats")
