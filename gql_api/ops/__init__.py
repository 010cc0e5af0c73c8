"""Operations on the data, outside requests: periodic cleanup (maintenance.py), the default
accounts (seed.py) and bulk test users (bulk_seed.py)."""
