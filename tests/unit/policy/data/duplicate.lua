-- duplicate.lua - one event registered twice: a load error, not a silent replacement
kumo.on('smtp_server_ehlo', function() end)
ringmail.on('smtp_server_ehlo', function() end)
