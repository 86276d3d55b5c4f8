"""What the gateway does for its users, shared by the API, the admin pages and the CLI: bags, parcels, handovers, devices, couriers, accounts, device configs."""
