-- orch.json: what a script reads is what it writes back.
local fake = require("helpers.fake_host")

describe("orch.json", function()
  local json

  before_each(function()
    fake.install()
    json = require("orch.json")
  end)

  it("keeps empty arrays and objects apart", function()
    local out = json.encode(json.decode('{"a":[],"b":{}}'))
    assert.is_true(out == '{"a":[],"b":{}}' or out == '{"b":{},"a":[]}', out)
    assert.are.equal("[]", json.encode(json.decode("[ ]")))
    assert.are.equal("[]", json.encode(json.array()))
    assert.are.equal("{}", json.encode({}))
    assert.are.equal("[[],[[]]]", json.encode(json.decode("[[],[[]]]")))
  end)

  it("does not touch brackets inside strings", function()
    local v = json.decode('{"s":"[]","t":"a\\"[]"}')
    assert.are.equal("[]", v.s)
    assert.are.equal('a"[]', v.t)
  end)

  it("round-trips null as json.null", function()
    local v = json.decode('{"a":null,"b":[1,null]}')
    assert.are.equal(json.null, v.a)
    assert.are.equal(json.null, v.b[2])
    assert.are.equal('[1,null]', json.encode(v.b))
  end)

  it("decodes whole numbers as integers", function()
    local v = json.decode('{"n":5,"f":1.5,"neg":-3,"list":[1,2]}')
    assert.are.equal("integer", math.type(v.n))
    assert.are.equal("integer", math.type(v.neg))
    assert.are.equal("integer", math.type(v.list[1]))
    assert.are.equal(1.5, v.f)
    assert.are.equal("integer", math.type(json.decode("7")))
  end)

  it("writes large integers exactly", function()
    assert.are.equal("[123456789012345678]", json.encode({ 123456789012345678 }))
    assert.are.equal('{"n":-99999999999999999}', json.encode({ n = -99999999999999999 }))
  end)

  it("writes floats with the fewest digits that read back the same, as Python does", function()
    assert.are.equal("[1764866129.330694]", json.encode({ 1764866129.330694 }))
    assert.are.equal('{"t":1764866129.000001}', json.encode({ t = 1764866129.000001 }))
    assert.are.equal("[0.1,1.5,-2.25]", json.encode({ 0.1, 1.5, -2.25 }))
    assert.are.equal("[0.3333333333333333]", json.encode({ 1 / 3 }))
    assert.are.equal("[1.2345678901234567e+300]", json.encode({ 1.2345678901234567e300 }))
    local t = 1764866129.330694
    assert.are.equal(t, json.decode(json.encode({ t }))[1])
  end)

  it("does not escape slashes", function()
    assert.are.equal('"/api/processes/x"', json.encode("/api/processes/x"))
    assert.are.equal('"a\\\\/b"', json.encode("a\\/b"))
  end)

  it("marks decoded arrays so that emptied lists stay arrays", function()
    local v = json.decode('{"items":[1,2]}')
    v.items[1], v.items[2] = nil, nil
    assert.are.equal('{"items":[]}', json.encode(v))
    assert.is_true(json.is_array(json.decode("[1]")))
    assert.is_false(json.is_array(json.decode('{"a":1}')))
  end)

  it("does not modify the value it encodes", function()
    local v = { list = json.array(), big = 1000000000000000 }
    json.encode(v)
    assert.are.equal(json.array_mt, getmetatable(v.list))
    assert.are.equal("integer", math.type(v.big))
  end)

  it("reports malformed input", function()
    local v, err = json.try_decode('{"a":')
    assert.is_nil(v)
    assert.is_string(err)
    assert.has_error(function()
      json.decode("nope")
    end)
    local out, eerr = json.try_encode({ f = function() end })
    assert.is_nil(out)
    assert.is_string(eerr)
  end)

  -- Found by fuzz_json (tests/fuzz): 1e999 decoded to inf, which no encoding can carry (a form
  -- value 1e999 answered 500 when the state was written back).
  it("refuses numbers beyond a double instead of decoding them to inf", function()
    for _, text in ipairs({ "1e999", "-1e999", "[1, 1e400]", '{"a": {"b": [2e308]}}' }) do
      local v, err = json.try_decode(text)
      assert.is_nil(v, text)
      assert.matches("out of range", err, 1, true)
    end
    assert.are.equal(1e308, json.decode("1e308"))
    assert.are.same({ 1.5e308 }, json.decode("[1.5e308]"))
    assert.are.equal("[1.5e+308]", json.encode(json.decode("[1.5e308]")))
  end)
end)
