-- reject_at_load.lua - reject outside a handler is an error
kumo.reject(550, '5.7.1 nope')
