-- syntax_error.lua - a doubled "=" on purpose; the loader must say line 4
ringmail.on("smtp_server_ehlo", function(domain)
  if domain == "x" then
    local y = = 1
  end
end)
