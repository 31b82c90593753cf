"""Evidence an auditor can check: the manifest of hashes, digital signatures, verification, bundles.

Nothing here changes the audit database; it reads what a run stored and the
files an export wrote. No Qt.
"""
