"""The three evaluation axes (capability, jailbreak attack success, persona drift) and the item files and attack templates they read."""
