from bs4 import BeautifulSoup  # noqa: F401  (BeautifulSoup 3's module name, for community.general.apache2_mod_proxy)
