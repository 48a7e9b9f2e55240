# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pg_backup
short_description: Back up, verify, restore, list and prune PostgreSQL backups
version_added: 0.1.0
description:
  - Dumps a PostgreSQL database with C(pg_dump) in the custom, directory, plain (optionally
    gzipped) or tar format, for the whole database, its schema, its data or chosen tables.
  - Writes to a hidden temporary name and renames only when the dump is complete and
    verified; files are 0600 in a 0700 directory, and a JSON manifest beside each backup
    records the sha256, sizes, server version, scope, label, timings and row counts.
  - A verified backup with the same O(label) is reused (C(changed=false)), so re-running a
    deploy does not dump twice.
  - Restores with C(pg_restore) or C(psql -v ON_ERROR_STOP=1) after checking the sha256,
    into the same or another database, and returns row counts after the restore.
  - Lists backups newest first and prunes them by count and age, never deleting the newest
    verified one.
  - Passwords never go on a command line; child programs get a 0600 E(PGPASSFILE).
author:
  - prodready.deploy maintainers (@prodready)
extends_documentation_fragment:
  - prodready.deploy.postgres
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Returns the path it would write, the backups it would prune or the restore it would run, and changes nothing.
  diff_mode:
    support: none
    description: Nothing is edited in place.
  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.postgres]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.postgres) set this module's options.
options:
  mode:
    description:
      - C(backup) dumps O(db) into O(dest_dir).
      - C(restore) restores O(src) into O(target_db) (default O(db)).
      - C(verify) checks O(src) (sha256 against its manifest, C(pg_restore --list), gzip integrity).
      - C(list) returns the backups in O(dest_dir), newest first.
      - C(prune) deletes backups in O(dest_dir) beyond O(keep) / O(keep_days).
    type: str
    default: backup
    choices: [ backup, restore, verify, list, prune ]
  dest_dir:
    description:
      - Directory holding the backups. Created 0700 when missing (mode C(backup)).
      - Required for O(mode=backup), O(mode=list), O(mode=prune), and to resolve O(src) C(latest) or a label.
    type: path
  format:
    description:
      - C(custom) is C(pg_dump -Fc); C(directory) is C(pg_dump -Fd) (parallel with O(jobs));
        C(plain) is SQL text (gzipped when O(compress) > 0); C(tar) is C(pg_dump -Ft).
    type: str
    default: custom
    choices: [ custom, directory, plain, tar ]
  compress:
    description:
      - Compression level 0-9. For C(custom) and C(directory) it is passed to C(pg_dump -Z)
        (unset = pg_dump's default). For C(plain), a level above 0 gzips the SQL (C(.sql.gz)).
        Not supported by C(tar).
    type: int
  jobs:
    description:
      - Parallel jobs. Backup - C(directory) format only. Restore - C(custom) and C(directory)
        formats (C(pg_restore -j)); not combinable with O(single_transaction).
    type: int
  scope:
    description:
      - C(full) (schema and data), C(schema) (C(--schema-only)) or C(data) (C(--data-only)).
    type: str
    default: full
    choices: [ full, schema, data ]
  tables:
    description:
      - Dump only these tables (C(pg_dump -t)), e.g. C(public.orders).
    type: list
    elements: str
    default: []
  exclude_tables:
    description:
      - Tables left out of the dump (C(pg_dump -T)).
    type: list
    elements: str
    default: []
  clean:
    description:
      - Plain format backup - add C(DROP) statements (C(pg_dump --clean)), so replaying the
        file with C(psql) replaces existing objects (runbook 000's full dump).
      - Restore of C(custom), C(directory) or C(tar) - C(pg_restore --clean).
    type: bool
    default: false
  if_exists:
    description:
      - With O(clean), use C(DROP ... IF EXISTS) (C(--if-exists)).
    type: bool
    default: true
  no_owner:
    description:
      - Do not set object ownership (C(pg_dump -O) for plain backups, C(pg_restore -O) for
        restores), for restoring as another role.
    type: bool
    default: false
  label:
    description:
      - A name for this backup, for example C(pre-1.4.0). A verified backup of the same
        database with this label and the same parameters is reused instead of dumping again.
      - A label already used with other parameters (format, scope, tables) is an error.
    type: str
  verify:
    description:
      - Verify the backup before it gets its final name - C(pg_restore --list) for the
        archive formats, a full gzip integrity check for C(.sql.gz), the dump-complete
        trailer for plain SQL. The sha256 is always recorded.
    type: bool
    default: true
  row_count_tables:
    description:
      - Tables whose row counts are recorded in the manifest, counted in the same snapshot
        that pg_dump dumps, and counted again after a restore.
      - V([*]) counts every table of the database (C(table) in schema public, else
        C(schema.table)), for a restore drill that compares them all.
    type: list
    elements: str
    default: []
  src:
    description:
      - Backup to restore or verify - a path, C(latest) (newest verified backup of O(db) in
        O(dest_dir)) or a label.
      - A path without a manifest (for example a cron C(pg_dump | gzip) file) is restored
        after a structural check; its sha256 cannot be checked.
    type: str
  target_db:
    description:
      - Database to restore into. Defaults to O(db).
    type: str
  create_target:
    description:
      - Create O(target_db) (from C(template0)) when it does not exist. Without it, a
        missing target database is an error.
    type: bool
    default: false
  drop_target:
    description:
      - Restore - drop O(target_db) once its rows are counted (or when the restore fails), so a
        restore drill leaves nothing behind. Only with O(create_target) and a
        O(target_db) that does not exist yet, so it never drops a database it did not create.
    type: bool
    default: false
  single_transaction:
    description:
      - Restore in one transaction (C(--single-transaction)); a failure leaves the target
        untouched.
    type: bool
    default: false
  swap:
    description:
      - Restore - replace the existing database O(target_db) (default O(db)) without ever
        restoring over it. The backup is restored into a fresh database
        C(<db>_restore_<stamp>) (same owner, encoding and locale), its row counts are checked
        against the manifest, and then, in one short step, new connections to the database
        are refused, its sessions are terminated, it is renamed to C(<db>_replaced_<stamp>)
        (kept, never dropped) and the fresh database takes its name.
      - The database is unavailable only during that step; RV(swap_window_s) measures it.
        Stop the application's writes first (router in maintenance), or the rows they write
        after the backup are discarded - RV(row_count_delta) counts them.
      - A failed restore or a row count mismatch drops the fresh database and leaves O(db)
        untouched. A failure during the renames puts the original name back.
      - The login role must own the database (or be a superuser) and may need
        C(pg_signal_backend) to terminate other roles' sessions. Database-level settings
        (C(ALTER DATABASE ... SET), C(GRANT CONNECT)) are not carried over.
      - Not combinable with O(clean) or O(create_target).
    type: bool
    default: false
  schema_dump:
    description:
      - Mode C(backup) - also dump the schema alone (format plain, scope schema, label
        C(<label>-schema)) in the same call, after the backup; RV(schema_dump) is its result. A
        reference to compare the schema with after a downgrade, without a second module call.
    type: bool
    default: false
  swap_later:
    description:
      - With O(swap), restore and verify the backup into the fresh database and stop there;
        the database is not replaced, RV(restore_db) names the copy. A later call with
        O(restored_db) swaps it in. The application keeps serving from the current database
        during the long part (the restore); only the swap needs its writes stopped.
    type: bool
    default: false
  restored_db:
    description:
      - With O(swap), a database an earlier call with O(swap_later) restored the backup into;
        it takes the name of O(target_db) (default O(db)) in the swap's short step, the
        replaced one is kept, and RV(discarded_rows) counts what the restore discarded. No
        O(src) is read.
      - "The swap leaves a comment on the replaced database naming O(restored_db). When
        O(restored_db) is gone because an earlier call (a run killed right after it) already
        swapped it in, the database that comment marks is found: nothing is swapped again,
        RV(already_swapped) is V(true) and RV(replaced_db) and RV(discarded_rows) are that
        swap's."
    type: str
  keep:
    description:
      - Prune - keep the newest O(keep) backups.
    type: int
  keep_days:
    description:
      - Prune - keep backups younger than O(keep_days) days. With O(keep), a backup matching
        either rule is kept. The newest verified backup is always kept.
    type: float
  protect:
    description:
      - Prune - backups never deleted and not counted by O(keep) - a glob over the label
        (C(pre-*), the deploys' backups) or, with a C(/), over the backup's path.
    type: list
    elements: str
    default: []
  bin_dir:
    description:
      - Directory of C(pg_dump), C(pg_restore) and C(psql). Default - C(/usr/lib/postgresql/15/bin)
        when present, then E(PATH). pg_dump's major version must be at least the server's.
    type: path
notes:
  - The sha256 of a C(directory) backup is the sha256 of the lines C(<relative path> NUL <sha256 of file>),
    one per file, sorted by path.
  - Row counts are taken in a snapshot exported to pg_dump (C(--snapshot)), so they match
    the dump exactly.
seealso:
  - module: prodready.deploy.alembic_migrate
"""

EXAMPLES = r"""
- name: Back up before deploying 1.4.0 (reused when the deploy is re-run)
  prodready.deploy.pg_backup:
    db: app
    login_host: db.internal
    login_user: app
    login_password: "{{ vault_app_db_password }}"
    dest_dir: /var/backups/app
    label: pre-1.4.0
    row_count_tables: [orders, customers]

- name: Runbook 000 - full plain dump with DROP statements
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: plain
    clean: true

- name: Runbook 000 - one table, data only
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: plain
    scope: data
    tables: [market_structure_results]

- name: Runbook 000 - schema only, for rollback reference
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: plain
    scope: schema

- name: Runbook 002 - daily gzipped SQL dump
  prodready.deploy.pg_backup:
    db: bot_production
    dest_dir: /backups
    format: plain
    compress: 6

- name: Parallel dump of a large database
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: directory
    jobs: 4

- name: Restore the pre-deploy backup into a fresh database
  prodready.deploy.pg_backup:
    mode: restore
    db: app
    dest_dir: /var/backups/app
    src: pre-1.4.0
    target_db: app_restored
    create_target: true
    jobs: 4

- name: Roll the database back to the pre-deploy backup, swapped in by rename
  prodready.deploy.pg_backup:
    mode: restore
    db: app
    dest_dir: /var/backups/app
    src: pre-1.4.0
    swap: true
  register: restored
  # restored.swap_window_s: seconds the database was unavailable
  # restored.replaced_db: the old database, kept as app_replaced_<stamp>

- name: Restore drill - the newest backup into a scratch database, counted and dropped
  prodready.deploy.pg_backup:
    mode: restore
    db: app
    dest_dir: /var/backups/app
    src: latest
    target_db: app_drill_20261102
    create_target: true
    drop_target: true
  register: drill
  # drill.row_counts_match: the restored rows equal the manifest's

- name: Verify the newest backup
  prodready.deploy.pg_backup:
    mode: verify
    db: app
    dest_dir: /var/backups/app
    src: latest

- name: List backups
  prodready.deploy.pg_backup:
    mode: list
    dest_dir: /var/backups/app
  register: backups

- name: Runbook 002 - keep 7 days of backups
  prodready.deploy.pg_backup:
    mode: prune
    db: bot_production
    dest_dir: /backups
    keep_days: 7
    protect: [pre-*]
"""

RETURN = r"""
path:
  description: Path of the backup written, reused, verified or restored.
  returned: modes backup, restore, verify
  type: str
  sample: /var/backups/app/app_full_pre-1.4.0_20261102T101500Z.dump
manifest:
  description: The backup's manifest (written beside it as C(<path>.manifest.json)); null for a restored file without one.
  returned: modes backup, restore, verify
  type: dict
  sample: {"db": "app", "label": "pre-1.4.0", "format": "custom", "scope": "full", "sha256": "9f86d0...",
           "size_bytes": 10240, "server_version": "15.18", "started": "2026-11-02T10:15:00Z",
           "finished": "2026-11-02T10:15:03Z", "duration_s": 3.1, "row_counts": {"orders": 1200},
           "alembic_revision": "a1b2c3", "verified": true, "verify_method": "pg_restore --list"}
size_bytes:
  description: Size of the backup in bytes (sum of files for the directory format).
  returned: modes backup, restore, verify
  type: int
  sample: 10240
sha256:
  description: sha256 of the backup (see notes for the directory format).
  returned: modes backup, restore, verify
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
duration_s:
  description: Seconds the module spent (dump + verify, or restore).
  returned: always
  type: float
  sample: 3.2
reused:
  description: True when an existing verified backup with the same label was returned instead of dumping.
  returned: mode backup
  type: bool
  sample: false
verified:
  description: True when the backup passed verification (sha256 and structure).
  returned: modes backup, restore, verify
  type: bool
  sample: true
pruned:
  description: Paths deleted by prune (that would be deleted, in check mode).
  returned: mode prune
  type: list
  elements: str
  sample: [/backups/app_full_20261025T020000Z.sql.gz]
kept:
  description: Paths kept by prune.
  returned: mode prune
  type: list
  elements: str
  sample: [/backups/app_full_20261102T020000Z.sql.gz]
backups:
  description: Backups in O(dest_dir) (of O(db) when set), newest first, each the manifest plus C(path).
  returned: modes list, prune
  type: list
  elements: dict
  sample: [{"path": "/backups/app_full_20261102T020000Z.dump", "label": null, "format": "custom", "verified": true}]
row_counts:
  description: Row counts of O(row_count_tables) - in the dump's snapshot (backup) or in the target database after a restore.
  returned: modes backup, restore
  type: dict
  sample: {"orders": 1200}
row_counts_match:
  description: After a restore, whether every row count equals the one recorded in the manifest (null without recorded counts).
  returned: mode restore
  type: bool
  sample: true
dropped_target:
  description: With O(drop_target), V(true) - the restored database was dropped after its rows were counted.
  returned: mode restore without O(swap)
  type: bool
  sample: false
target_db:
  description: Database restored into.
  returned: mode restore
  type: str
  sample: app_restored
created_target:
  description: Whether the target database was created (would be, in check mode).
  returned: mode restore
  type: bool
  sample: false
schema_dump:
  description: With O(schema_dump), the schema-only dump's own result (C(path), C(size_bytes), C(sha256), C(reused), ...).
  returned: mode backup with O(schema_dump)
  type: dict
  sample: {"path": "/srv/app/backups/app_schema_pre-1.1.0-schema_20261102T101500Z.sql", "size_bytes": 18937}
swapped:
  description: With O(swap), whether the restored database took the name of RV(target_db) (V(false) with O(swap_later)).
  returned: mode restore with O(swap)
  type: bool
  sample: true
already_swapped:
  description: With O(restored_db), V(true) when an earlier call had already swapped it in (see O(restored_db)); nothing
    was changed.
  returned: mode restore with O(restored_db)
  type: bool
  sample: false
restore_db:
  description: With O(swap), the fresh database the backup was restored into before it took the name of RV(target_db)
    (with O(swap_later), the one to give as O(restored_db) later).
  returned: mode restore with O(swap)
  type: str
  sample: app_restore_20261102T101500Z
replaced_db:
  description: With O(swap), the name the replaced database now has (kept, never dropped).
  returned: mode restore with O(swap)
  type: str
  sample: app_replaced_20261102T101500Z
swap_window_s:
  description: With O(swap), seconds between refusing new connections to the database and the restored one taking its name (null in check mode).
  returned: mode restore with O(swap)
  type: float
  sample: 0.042
terminated_sessions:
  description: With O(swap), sessions of the replaced database terminated for the rename (that would be, in check mode).
  returned: mode restore with O(swap)
  type: int
  sample: 3
replaced_row_counts:
  description: With O(swap), row counts of the same tables in the replaced database, taken inside the swap window (after the last write).
  returned: mode restore with O(swap)
  type: dict
  sample: {"orders": 1212}
discarded_rows:
  description:
    - With O(swap), the rows the restore discarded, over every table of the replaced database (not only
      O(row_count_tables)) - per table (C(table) in schema public, else C(schema.table)), its rows beyond the
      restored database's, all of them for a table made after the backup. Counted after the swap window; tables with
      nothing discarded are left out.
    - V(null) when the comparison could not be made (a warning says why).
  returned: mode restore with O(swap)
  type: dict
  sample: {"companies": 2, "products": 1, "audit.events": 4}
row_count_delta:
  description:
    - With O(swap), per table, rows in the replaced database minus rows restored.
    - A positive number is rows written after the backup that the restore discarded (a negative one, rows deleted after it that came back).
  returned: mode restore with O(swap)
  type: dict
  sample: {"orders": 12}
state:
  description: Added by Ansible for RV(path) - C(file) or C(directory) (the directory format).
  returned: when path exists
  type: str
  sample: file
mode:
  description: Added by Ansible for RV(path) - its permissions.
  returned: when path exists
  type: str
  sample: "0600"
owner:
  description: Added by Ansible for RV(path) - owner name.
  returned: when path exists
  type: str
  sample: postgres
group:
  description: Added by Ansible for RV(path) - group name.
  returned: when path exists
  type: str
  sample: postgres
uid:
  description: Added by Ansible for RV(path) - owner id.
  returned: when path exists
  type: int
  sample: 999
gid:
  description: Added by Ansible for RV(path) - group id.
  returned: when path exists
  type: int
  sample: 999
size:
  description: Added by Ansible for RV(path) - size of the file or directory entry in bytes (see RV(size_bytes) for the backup size).
  returned: when path exists
  type: int
  sample: 10240
executed_commands:
  description: Commands run (or that would run, in check mode), as argv lists. They never hold a password.
  returned: always
  type: list
  elements: list
  sample: [["/usr/lib/postgresql/15/bin/pg_dump", "--format=custom", "--file=/backups/.x.tmp-1", "--dbname=app"]]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_store
from ansible_collections.prodready.deploy.plugins.module_utils import _pg_dump
from ansible_collections.prodready.deploy.plugins.module_utils import _pg_restore
from ansible_collections.prodready.deploy.plugins.module_utils import _pg_swap
from ansible_collections.prodready.deploy.plugins.module_utils._pg_client import Runner
from ansible_collections.prodready.deploy.plugins.module_utils._postgres import (
    DB_ERRORS, HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, postgres_connection_argument_spec)

MODES = ("backup", "restore", "verify", "list", "prune")
REQUIRED_IF = [
    ("mode", "backup", ("db", "dest_dir")),
    ("mode", "restore", ("src", "restored_db"), True),
    ("mode", "verify", ("src",)),
    ("mode", "list", ("dest_dir",)),
    ("mode", "prune", ("dest_dir",)),
    ("mode", "prune", ("keep", "keep_days"), True),
]


def argument_spec():
    spec = postgres_connection_argument_spec()
    spec.update(
        mode=dict(type="str", default="backup", choices=list(MODES)),
        dest_dir=dict(type="path"),
        format=dict(type="str", default="custom", choices=list(bf.FORMATS)),
        compress=dict(type="int"),
        jobs=dict(type="int"),
        scope=dict(type="str", default="full", choices=list(bf.SCOPES)),
        tables=dict(type="list", elements="str", default=[]),
        exclude_tables=dict(type="list", elements="str", default=[]),
        clean=dict(type="bool", default=False),
        if_exists=dict(type="bool", default=True),
        no_owner=dict(type="bool", default=False),
        label=dict(type="str"),
        verify=dict(type="bool", default=True),
        row_count_tables=dict(type="list", elements="str", default=[]),
        src=dict(type="str"),
        target_db=dict(type="str"),
        create_target=dict(type="bool", default=False),
        drop_target=dict(type="bool", default=False),
        single_transaction=dict(type="bool", default=False),
        swap=dict(type="bool", default=False),
        schema_dump=dict(type="bool", default=False),
        swap_later=dict(type="bool", default=False),
        restored_db=dict(type="str"),
        keep=dict(type="int", no_log=False),
        keep_days=dict(type="float", no_log=False),
        protect=dict(type="list", elements="str", default=[]),
        bin_dir=dict(type="path"),
    )
    return spec


def validate(params):
    """Check the options of the chosen mode before anything is read or run.

    What depends on the backup itself (its format for `jobs`, its existence) is checked
    once it is found.
    """
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    mode = params["mode"]
    if mode == "backup":
        fmt = params["format"]
        if params.get("jobs") is not None:
            if params["jobs"] < 1:
                raise ProdreadyError("jobs: must be >= 1, got %d" % params["jobs"])
            if fmt != "directory":
                raise ProdreadyError("jobs: parallel dumps need format=directory (format is %s)" % fmt)
        if params.get("compress") is not None:
            if not 0 <= params["compress"] <= 9:
                raise ProdreadyError("compress: must be 0-9, got %d" % params["compress"])
            if fmt == "tar" and params["compress"] > 0:
                raise ProdreadyError("compress: the tar format cannot be compressed; use custom, "
                                     "directory or plain")
        bf.validate_label(params.get("label"))
        for name in params["row_count_tables"]:
            bf.split_table_name(name)
    elif mode == "restore" and params["swap"]:
        target = params.get("target_db") or params.get("db")
        if not target:
            raise ProdreadyError("target_db: set target_db or db (the database to replace) for swap")
        if params["clean"]:
            raise ProdreadyError("clean: not used with swap (the backup is restored into a fresh "
                                 "database); remove clean")
        if params["drop_target"]:
            raise ProdreadyError("drop_target: not used with swap (swap keeps what it restores); "
                                 "restore without swap into a new target_db")
        if params["create_target"]:
            raise ProdreadyError("create_target: not used with swap (swap replaces an existing "
                                 "database); restore without swap to create %s" % target)
        if params["swap_later"] and params["restored_db"]:
            raise ProdreadyError("restored_db: swaps in a database restored earlier; swap_later restores one "
                                 "for later: give one of them")
    elif mode == "restore" and (params["swap_later"] or params["restored_db"]):
        raise ProdreadyError("%s: needs swap: true" % ("swap_later" if params["swap_later"] else "restored_db"))
    elif mode == "restore" and not (params.get("target_db") or params.get("db")):
        raise ProdreadyError("target_db: set target_db or db for mode restore")
    elif mode == "restore" and params["drop_target"] and not params["create_target"]:
        raise ProdreadyError("drop_target: needs create_target: true (it drops only a database the restore creates)")
    elif mode == "prune" and params.get("keep") is None and params.get("keep_days") is None:
        raise ProdreadyError("keep: set keep and/or keep_days for mode prune")


class _WithParams(object):
    """`module` with other params: the schema-only dump of O(schema_dump) runs the backup
    code with its own options."""

    def __init__(self, module, params):
        self._module, self.params = module, params

    def __getattr__(self, name):
        return getattr(self._module, name)


def run(module):
    """Validate, then run the mode (`restore` with `swap` is its own); returns the result dict."""
    params = module.params
    validate(params)
    runner = Runner(module)
    mode = params["mode"]
    if mode == "backup":
        result = _pg_dump.backup(module, runner)
        if params["schema_dump"]:
            label = params.get("label")
            schema = dict(params, scope="schema", format="plain", compress=None, jobs=None, tables=[],
                          exclude_tables=[], row_count_tables=[], schema_dump=False,
                          label=(label + "-schema") if label else "schema")
            result["schema_dump"] = _pg_dump.backup(_WithParams(module, schema), runner)
            result["executed_commands"] = runner.executed
        return result
    if mode == "restore":
        return (_pg_swap.restore_swap if params["swap"] else _pg_restore.restore)(module, runner)
    if mode == "verify":
        return _pg_restore.verify(module, runner)
    if mode == "list":
        return _backup_store.list_backups(module, runner.executed)
    return _backup_store.prune_backups(module, runner.executed)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, required_if=REQUIRED_IF)
    if not HAS_PSYCOPG2 and module.params["mode"] in ("backup", "restore"):
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=to_native(PSYCOPG2_IMPORT_ERROR))
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)
    except DB_ERRORS as e:
        module.fail_json(msg="pg_backup %s: database error: %s" % (module.params["mode"], to_native(e).strip()))
    except (IOError, OSError) as e:
        module.fail_json(msg="pg_backup %s: %s" % (module.params["mode"], to_native(e)))


if __name__ == "__main__":
    main()
