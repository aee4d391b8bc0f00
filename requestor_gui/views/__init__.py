"""The screens of the DAIG desktop client; each talks to the network only through workers."""
