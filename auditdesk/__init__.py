"""AuditDesk: audit a vendor's fine-tuned language model against its base model, offline."""

__version__ = "0.1.0"
