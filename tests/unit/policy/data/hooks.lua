-- hooks.lua - the policy_lua_test fixture: every hook, driven by the EHLO domain for the hostile cases
local function hex(s)
  return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))
end

local function bomb_string()
  local s = 'x'
  while true do s = s .. s end
end

local function bomb_table()
  local t = {}
  local i = 0
  while true do
    i = i + 1
    t[i] = string.rep('y', 4096) .. i
  end
end

local function spin() while true do end end

local seen = 0 -- state kept across calls

local cases = {
  ['ok.example'] = function(conn) conn:set_meta('helo_ok', 'yes') end,
  ['bad.example'] = function() kumo.reject(550, '5.7.1 go away') end,
  ['tempfail.example'] = function() ringmail.reject(421, '4.7.0 try later') end,
  ['loop.example'] = spin,
  ['pcallloop.example'] = function() while true do pcall(spin) end end,
  ['xpcallloop.example'] = function() while true do xpcall(spin, function(e) return e end) end end,
  ['closeloop.example'] = function()
    local guard <close> = setmetatable({}, {__close = function() while true do end end})
    error('boom')
  end,
  ['membomb.example'] = bomb_string,
  ['memtable.example'] = bomb_table,
  ['pcallmem.example'] = function() pcall(bomb_table) end,
  ['pcallreject.example'] = function()
    local ok = pcall(kumo.reject, 550, '5.7.1 caught?')
    ringmail.log('error', 'reject was caught: ' .. tostring(ok))
  end,
  ['io.example'] = function() return io.open('/etc/passwd') end,
  ['os.example'] = function() os.execute('touch /tmp/ringmail-policy-test-pwned') end,
  ['load.example'] = function() return load('return 1')() end,
  ['loadstring.example'] = function() return loadstring('return 1')() end,
  ['require.example'] = function() return require('os') end,
  ['dofile.example'] = function() return dofile('/etc/passwd') end,
  ['loadfile.example'] = function() return loadfile('/etc/passwd') end,
  ['debug.example'] = function() return debug.getinfo(1) end,
  ['package.example'] = function() return package.loaded end,
  ['coroutine.example'] = function() return coroutine.create(spin) end,
  ['collect.example'] = function() collectgarbage() end,
  ['dump.example'] = function() return string.dump(spin) end,
  ['strdump.example'] = function() return ('x').dump(spin) end,
  ['gc.example'] = function() setmetatable({}, {__gc = spin}) end,
  ['errtable.example'] = function() error({code = 550, text = '5.7.1 table'}) end,
  ['errnil.example'] = function() error(nil) end,
  ['errfunc.example'] = function() error(spin) end,
  ['errtostring.example'] = function() error(setmetatable({}, {__tostring = spin})) end,
  ['errstring.example'] = function() error('plain failure') end,
  ['recurse.example'] = function()
    local function f(n) return 1 + f(n + 1) end
    return f(1)
  end,
  ['badcode.example'] = function() kumo.reject(250, '2.0.0 ok') end,
  ['badtext.example'] = function() kumo.reject(550, '5.7.1 a\r\nMAIL FROM:<x>') end,
  ['longtext.example'] = function() kumo.reject(550, string.rep('a', 401)) end,
  ['metabadkey.example'] = function(conn) conn:set_meta('bad key', 'x') end,
  ['metamany.example'] = function(conn) for i = 1, 40 do conn:set_meta('k' .. i, 'v') end end,
  ['metalong.example'] = function(conn) conn:set_meta('k', string.rep('v', 1025)) end,
  ['metactl.example'] = function(conn) conn:set_meta('k', 'a\nb') end,
  ['metabadutf8.example'] = function(conn) conn:set_meta('k', 'a\xff') end,
  ['metareadonly.example'] = function(conn) conn:set_meta('received_from', '1.2.3.4:5') end,
  ['metatable.example'] = function(conn) conn:set_meta('k', {}) end,
  ['metathenfail.example'] = function(conn) conn:set_meta('partial', 'yes') error('after set') end,
  ['metathenreject.example'] = function(conn) conn:set_meta('partial', 'yes') kumo.reject(550, '5.7.1 no') end,
  ['stash.example'] = function(conn) stashed = conn end,
  ['usestash.example'] = function() return stashed:get_meta('helo_ok') end,
  ['onlater.example'] = function() ringmail.on('smtp_server_ehlo', spin) end,
  ['rawset.example'] = function(conn) rawset(_G, 'x_global', 1) conn:set_meta('raw', tostring(x_global)) end,
  ['log.example'] = function() for i = 1, 100 do ringmail.log('info', 'line ' .. i .. '\n\0') end end,
  ['badlevel.example'] = function() ringmail.log('loud', 'x') end,
  ['count.example'] = function(conn) seen = seen + 1 conn:set_meta('seen', tostring(seen)) end,
  ['pattern.example'] = function(conn) conn:set_meta('m', ('abc'):match('b.')) end,
  -- C string functions: their worst case is checked before they run (policy_pattern.c)
  ['backtrack.example'] = function() return string.find(string.rep('a', 2000), string.rep('a*', 30) .. 'b') end,
  ['backtrackmethod.example'] = function() return (string.rep('a', 2000)):match(string.rep('a-', 30) .. 'b') end,
  ['backtrackpcall.example'] = function()
    pcall(string.gsub, string.rep('a', 2000), string.rep('[a]*', 30) .. 'b', '')
  end,
  ['backtrackgmatch.example'] = function()
    for _ in string.rep('a', 5000):gmatch('a*a*a*b') do end
  end,
  ['repbomb.example'] = function() return string.rep('x', 1 << 40) end,
  ['findloop.example'] = function() local s = string.rep('a', 4000) while true do s:find('a.-b') end end,
  ['trim.example'] = function(conn)
    local v = string.rep(' ', 150) .. 'x y' .. string.rep(' ', 150)
    conn:set_meta('trim', v:match('^%s*(.-)%s*$') .. '|' .. select(2, v:gsub('%s+', ' ')) .. '|' ..
      tostring(v:find('x y', 1, true)) .. '|' .. tostring(string.find(string.rep('a', 100000), 'b')))
  end,
}

ringmail.on('smtp_server_connection_accepted', function(conn_meta)
  if conn_meta:get_meta('received_from'):match('^127%.0%.0%.66:') then
    kumo.reject(421, '4.7.0 not from you')
  end
  conn_meta:set_meta('peer', conn_meta:get_meta('received_from'))
  conn_meta:set_meta('via', conn_meta:get_meta('received_via'))
  conn_meta:set_meta('proto', conn_meta:get_meta('reception_protocol'))
end)

ringmail.on('smtp_server_ehlo', function(domain, conn_meta)
  local f = cases[domain]
  if f then return f(conn_meta) end
  -- unknown names: echo what arrived, byte for byte
  conn_meta:set_meta('ehlo_hex', hex(domain))
  conn_meta:set_meta('ehlo_len', tostring(#domain))
end)

kumo.on('smtp_server_mail_from', function(sender, conn_meta, params)
  if sender.user == 'spam' then kumo.reject(550, '5.7.1 no spam') end
  if sender.user == 'gc' then getmetatable(sender).__gc = spin end -- must fail: metatables are locked
  conn_meta:set_meta('tenant', sender.domain)
  conn_meta:set_meta('queue', 'q-' .. sender.domain)
  conn_meta:set_meta('sender_hex', hex(sender.email))
  conn_meta:set_meta('sender_str', tostring(sender) == sender.email and 'same' or 'differs')
  conn_meta:set_meta('size', params.SIZE or 'none')
  conn_meta:set_meta('utf8', tostring(params.SMTPUTF8 == true))
end)

ringmail.on('smtp_server_rcpt_to', function(recipient, conn_meta)
  if recipient.domain == 'nowhere.example' then kumo.reject(550, '5.1.1 no such user') end
  conn_meta:set_meta('campaign', 'c-' .. recipient.user)
  conn_meta:set_meta('rcpt_hex', hex(recipient.email))
end)

kumo.on('smtp_server_message_received', function(msg, conn_meta)
  local tenant = msg:get_first_named_header_value('x-tenant')
  if tenant == 'blocked' then kumo.reject(554, '5.7.1 tenant blocked') end
  if tenant then msg:set_meta('tenant', tenant) end
  msg:set_meta('routing_domain', 'smarthost.example')
  msg:set_meta('subject', msg:get_first_named_header_value('Subject') or '(none)')
  msg:set_meta('received_count', tostring(#msg:get_all_named_header_values('Received')))
  msg:set_meta('header_count', tostring(#msg:get_all_headers()))
  msg:set_meta('first_header', msg:get_all_headers()[1][1])
  msg:set_meta('sender', msg:sender().email)
  msg:set_meta('rcpt_count', tostring(#msg:recipient_list()))
  msg:set_meta('first_rcpt', msg:recipient().domain)
  msg:set_meta('size', tostring(msg:size()))
  msg:set_meta('prev_queue', msg:get_meta('queue') or 'nil')
  msg:set_meta('missing', tostring(msg:get_first_named_header_value('X-Absent')))
  conn_meta:set_meta('via_conn', 'yes')
end)

-- KumoMTA's signature; true accepts, anything else refuses
kumo.on('smtp_server_auth_plain', function(authz, authc, password, conn_meta)
  conn_meta:set_meta('auth_tried', authz .. '/' .. authc)
  if authc == 'reject' then kumo.reject(535, '5.7.8 go away') end
  if authc == 'string' then return 'true' end
  return authc == 'carol' and password == 'lua-secret'
end)

-- the HTTP injection's event: the same msg object, its own handler
kumo.on('http_message_generated', function(msg, conn_meta)
  if msg:get_first_named_header_value('Subject') == 'refuse' then kumo.reject(550, '5.7.1 http refused') end
  msg:set_meta('http_subject', msg:get_first_named_header_value('Subject') or '(none)')
  msg:set_meta('http_rcpts', tostring(#msg:recipient_list()))
end)
