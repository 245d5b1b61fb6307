"""``manage.py pymysqllock``."""
