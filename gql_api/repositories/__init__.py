"""Every SQL statement of the service, one module per subject (users, sessions, mfa, ...).

One convention for every function: the first parameter is where the statement runs, and every
other argument is keyword-only.

- An ``AsyncSession``: the work runs inside the caller's transaction; nothing here commits.
- A :class:`~gql_api.repositories.row_source.RowSource` (the ``Database``): one autocommit
  statement on the hot path (the bearer lookup, DataLoaders, pages), rows read as attributes.

Reads select only the columns they need: user rows use ``models.USER_PUBLIC_COLUMNS``, and a
secret column (password or token hash, MFA secret) is read only by the function that checks it.
"""
