"""The flag catalogue, the purposes a consumer may state, and the grants between them."""
