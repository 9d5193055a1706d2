"""The pages' routers, one per audience (citizen, front desk, référent, supervision), and
what they share."""
