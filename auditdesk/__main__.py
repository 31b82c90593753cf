"""`python -m auditdesk` is the same as the `auditdesk` command."""

from auditdesk.cli.main import main

raise SystemExit(main())
