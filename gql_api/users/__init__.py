"""User management: the viewer's own profile edits and the admins' create/update/delete.

Inputs arrive validated (``gql_api.validation``); each change and its audit entry commit in one
transaction. Resolvers call these; these call the repositories.
"""
