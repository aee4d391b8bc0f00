"""The scheduler: plans rounds, publishes tasks within the contributor cap, re-issues lost ones."""
