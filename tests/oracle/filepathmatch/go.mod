module pullsecret-injector.invalid/tests/oracle/filepathmatch

go 1.24.0
