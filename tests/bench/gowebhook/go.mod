module pullsecret-injector/bench/gowebhook

go 1.24
