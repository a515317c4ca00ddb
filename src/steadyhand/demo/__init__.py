"""The travel-booking demo: simulated unreliable remote services and the saga that books trips
across them."""
