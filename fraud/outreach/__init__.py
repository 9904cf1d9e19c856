"""What leaves the platform: customer alerts, mailers and the stakeholder report."""
