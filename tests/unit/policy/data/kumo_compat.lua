-- kumo_compat.lua - KumoMTA-style handlers, unchanged: kumo.on, kumo.reject, sender.domain, msg:set_meta
kumo.on('smtp_server_ehlo', function(domain, conn_meta)
  if domain == 'bad.actor' then
    kumo.reject(420, 'go away')
  end
end)

kumo.on('smtp_server_mail_from', function(sender)
  if sender.domain == 'bad.domain' then
    kumo.reject(420, 'not thanks')
  end
end)

kumo.on('smtp_server_rcpt_to', function(recipient)
  if recipient.domain == 'bad.domain' then
    kumo.reject(420, 'not thanks')
  end
end)

kumo.on('smtp_server_message_received', function(msg)
  local tenant = msg:get_first_named_header_value 'X-Tenant'
  if tenant then
    msg:set_meta('tenant', tenant)
  end
  msg:set_meta('routing_domain', 'my.smarthost.com')
end)

-- events this role does not run are accepted and ignored
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain) return nil end)
