"""``twin api`` (the HTTP API and console alone) and ``twin apikey``."""

from __future__ import annotations

import argparse

from api import bodies
from flows.runtime.settings import Settings
from storage import api_keys
from storage.database import connect_migrated, migrate


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from api.server import serve as serve_api

    config = settings.api_config()
    migrate(config.database_url)
    serve_api(config, args.host or settings.api_host, args.port or settings.api_port)
    return 0


def run_apikey(args: argparse.Namespace, settings: Settings) -> int:
    with connect_migrated(settings.require_database()) as conn:
        if args.action == "create":
            record, key = api_keys.create(conn, args.name, args.role)
            if args.json:
                print(bodies.dumps({**bodies.key(record), "key": key}))
            else:
                print(key)
                print(f"key {record.id} ({record.role}, {record.name}): shown this once; "
                      "send it as Authorization: Bearer KEY")  # fmt: skip
            return 0
        if args.action == "list":
            keys = api_keys.list_keys(conn, revoked=args.revoked)
            if args.json:
                print(bodies.dumps(bodies.keys(keys)))
                return 0
            print(f"{'id':>4} {'role':<9} {'prefix':<11} {'created':<17} {'last used':<17} name")
            for k in keys:
                used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
                gone = f"  (revoked {k.revoked_at:%Y-%m-%d %H:%M})" if k.revoked_at else ""
                print(f"{k.id:>4} {k.role:<9} {k.prefix:<11} {k.created_at:%Y-%m-%d %H:%M} "
                      f"{used:<17} {k.name}{gone}")  # fmt: skip
            print(f"{len(keys)} key(s)")
            return 0
        record = api_keys.revoke(conn, args.id)
        print(f"key {record.id} ({record.name}): revoked")
        return 0
