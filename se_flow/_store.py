"""Moved to the public `se_flow.ports`; kept while work in flight still imports it."""

from .ports import CaseFilter, Store, Tx

__all__ = ["CaseFilter", "Store", "Tx"]
