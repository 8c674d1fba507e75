-- bad_event.lua - an event name with characters no event has
ringmail.on('smtp server ehlo', function() end)
