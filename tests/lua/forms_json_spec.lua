-- orch.json.ordered: the key order that form schemas rely on.
local fake = require("helpers.fake_host")

describe("orch.json.ordered", function()
  local json

  before_each(function()
    fake.install()
    json = require("orch.json")
  end)

  it("writes the listed keys first, in order, then the others sorted", function()
    local t = json.ordered({ z = 1, a = 2, m = 3, b = 4 }, { "z", "m" })
    assert.are.equal('{"z":1,"m":3,"a":2,"b":4}', json.encode(t))
    assert.are.equal('{"a":1,"b":2,"c":3}', json.encode(json.ordered({ c = 3, b = 2, a = 1 })))
  end)

  it("skips listed keys that are absent and writes an empty ordered table as {}", function()
    assert.are.equal('{"b":1}', json.encode(json.ordered({ b = 1 }, { "a", "b", "b" })))
    assert.are.equal("{}", json.encode(json.ordered()))
    assert.are.equal('[{}]', json.encode({ json.ordered() }))
  end)

  it("nests inside plain tables and arrays, and keeps what plain encoding keeps", function()
    local inner = json.ordered({ y = json.array(), x = "a/b", big = 123456789012345678, n = json.null }, { "y" })
    local out = json.encode({ list = json.array({ inner, json.ordered({ k = {} }) }) })
    assert.are.equal('{"list":[{"y":[],"big":123456789012345678,"n":null,"x":"a/b"},{"k":{}}]}', out)
    assert.are.equal('{"a":{"c":1,"b":2}}', json.encode(json.ordered({ a = json.ordered({ b = 2, c = 1 }, { "c" }) })))
  end)

  it("escapes keys and strings like the plain encoder", function()
    assert.are.equal('{"a\\"b":"\\n","c/d":"\\u0000x"}', json.encode(json.ordered({ ['a"b'] = "\n", ["c/d"] = "\0x" })))
  end)

  it("reports values it cannot encode", function()
    local out, err = json.try_encode(json.ordered({ f = function() end }))
    assert.is_nil(out)
    assert.is_truthy(err:find("function", 1, true))
    assert.has_error(function()
      json.encode(json.ordered({ [true] = 1 }))
    end)
  end)

  it("round-trips through decode with the same content", function()
    local t = json.ordered({ b = json.array({ 1, 2 }), a = json.ordered({ d = true }) }, { "b" })
    assert.are.same({ b = { 1, 2 }, a = { d = true } }, json.decode(json.encode(t)))
  end)
end)
