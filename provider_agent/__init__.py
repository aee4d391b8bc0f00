"""The provider agent: a volunteer's machine taking training tasks until stopped."""
