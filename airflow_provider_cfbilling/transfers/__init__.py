"""Transfers: Cloudflare billing data into other systems (a SQL table: :mod:`.cloudflare_to_sql`)."""
