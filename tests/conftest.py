pytest_plugins = ["tests.fix_source", "tests.fix_sync", "tests.fix_proxy", "tests.fix_serve",
                  "tests.fix_browser"]
