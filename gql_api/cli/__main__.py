"""``python -m gql_api.cli``, as the ``gql-api`` script."""

import sys

from gql_api.cli import main

sys.exit(main())
