"""Kept for tests written against the old place: the contract now ships as `se_flow.contract`."""

from se_flow.contract import COACH, NOW, WORKFLOW, StoreContract, _add_staff, _refer

__all__ = ["COACH", "NOW", "WORKFLOW", "StoreContract", "_add_staff", "_refer"]
