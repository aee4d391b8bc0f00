"""Code that tests share: test doubles and child-process targets, imported by test modules."""
