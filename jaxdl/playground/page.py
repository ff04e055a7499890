"""The page `python -m jaxdl.playground` shows at GET /: static HTML, CSS and JavaScript, no outside files.

The layout follows the TensorFlow playground: data on the left, the input features and hidden
layers (each neuron a tile of its output over the plane, the weights as lines whose colour is the
sign and thickness the size), the output surface with the points and the loss curve on the
right. The script is `jaxdl.playground.page_script`. Elements the browser test reads: `#epoch`,
`#test_loss`, `#train_loss`, `#rate` (updates per second, measured in the page over the last
UPDATE_WINDOW updates), `#updates` (views drawn), `#output` (the surface canvas), `.neuron`
tiles, `#members .member` (compare), `#save_status`, `body[data-pending]` (settings changes on their way).
"""

from jaxdl.playground.page_script import SCRIPT

STYLE = r"""
  body { font: 13px system-ui, sans-serif; margin: 0; color: #333; background: #f7f7f7; }
  header { background: #183d4e; color: #fff; padding: .6em 1.2em; display: flex; gap: 1.4em; align-items: center;
           flex-wrap: wrap; }
  header h1 { font-size: 1.2em; margin: 0 1em 0 0; font-weight: 500; }
  header label { display: flex; flex-direction: column; font-size: .8em; color: #bcd; }
  header select { margin-top: 2px; }
  header button { font-size: 1.1em; border-radius: 50%; width: 2.4em; height: 2.4em; border: 0; cursor: pointer; }
  #play { background: #f59322; color: #fff; width: 2.8em; height: 2.8em; }
  .counter { font-size: 1.4em; font-variant-numeric: tabular-nums; }
  main { display: flex; gap: 1.5em; padding: 1em 1.2em; align-items: flex-start; flex-wrap: wrap; }
  section h2 { font-size: .9em; text-transform: uppercase; color: #777; margin: 0 0 .6em; font-weight: 500; }
  #data { width: 170px; }
  .datasets { display: grid; grid-template-columns: repeat(2, 60px); gap: 6px; }
  .datasets button { width: 60px; height: 32px; font-size: .75em; border: 2px solid #ccc; background: #fff;
                     cursor: pointer; }
  .datasets button.active { border-color: #183d4e; background: #e4eef3; }
  #data label { display: block; margin: .8em 0 0; font-size: .85em; }
  #data input[type=range] { width: 150px; }
  #network { position: relative; display: flex; gap: 38px; align-items: flex-start; }
  #wires { position: absolute; left: 0; top: 0; pointer-events: none; overflow: visible; }
  .column { display: flex; flex-direction: column; align-items: center; gap: 8px; z-index: 1; min-width: 60px; }
  .column .head { font-size: .8em; color: #666; height: 2.6em; text-align: center; }
  .column .head button { width: 1.7em; height: 1.7em; border-radius: 50%; border: 1px solid #999; background: #fff;
                         cursor: pointer; padding: 0; }
  .node { display: flex; align-items: center; gap: 4px; }
  .node canvas { width: 40px; height: 40px; border: 1px solid #bbb; image-rendering: auto; background: #fff; }
  .feature { cursor: pointer; opacity: .35; }
  .feature.active { opacity: 1; }
  .feature span { width: 4.2em; text-align: right; font-size: .8em; }
  #layers_head { position: absolute; top: -2.4em; left: 0; font-size: .9em; }
  #output_section { width: 320px; }
  #output { width: 300px; height: 300px; border: 1px solid #bbb; }
  #curve { width: 300px; height: 70px; border: 1px solid #ddd; background: #fff; }
  .losses { font-variant-numeric: tabular-nums; margin: .4em 0; }
  #compare_box, #save_box { margin-top: 1em; padding-top: .6em; border-top: 1px solid #ddd; }
  #members { display: flex; flex-wrap: wrap; gap: 8px; margin-top: .6em; }
  .member { font-size: .75em; text-align: center; }
  .member canvas { width: 140px; height: 140px; border: 3px solid #ccc; display: block; }
  #compare_curves { width: 300px; height: 90px; border: 1px solid #ddd; background: #fff; }
  #error { color: #b00020; min-height: 1.2em; padding: 0 1.2em; }
  #stats { color: #999; font-size: .8em; }
"""

BODY = r"""
<header>
  <h1>jaxdl playground</h1>
  <button id="reset" title="reset the weights">&#8634;</button>
  <button id="play" title="play / pause">&#9654;</button>
  <button id="step" title="one epoch">&#9654;|</button>
  <div><div style="font-size:.8em;color:#bcd">Epoch</div><div class="counter" id="epoch">0</div></div>
  <label>Learning rate <select id="learning_rate"></select></label>
  <label>Activation <select id="activation"></select></label>
  <label>Regularization <select id="regularization"></select></label>
  <label>Regularization rate <select id="regularization_rate"></select></label>
  <label>Optimizer <select id="optimizer"></select></label>
  <div id="stats"><span id="rate">0</span> updates/s &middot; <span id="updates">0</span> updates &middot;
    <span id="per_update">0</span> epochs/update</div>
</header>
<div id="error"></div>
<main>
  <section id="data">
    <h2>Data</h2>
    <div class="datasets" id="datasets"></div>
    <label>Ratio of training to test data: <b id="train_percent_value"></b>%
      <input type="range" id="train_percent" min="10" max="90" step="10"></label>
    <label>Noise: <b id="noise_value"></b>
      <input type="range" id="noise" min="0" max="50" step="5"></label>
    <label>Batch size: <b id="batch_size_value"></b>
      <input type="range" id="batch_size" min="1" max="30" step="1"></label>
    <label>Seed <input type="number" id="seed" min="0" style="width:6em"></label>
  </section>
  <section>
    <h2><span id="layer_count"></span> hidden layers
      <button id="add_layer" title="add a layer">+</button>
      <button id="remove_layer" title="remove a layer">&minus;</button></h2>
    <div id="network"><svg id="wires"></svg></div>
  </section>
  <section id="output_section">
    <h2>Output</h2>
    <div class="losses">Test loss <b id="test_loss">-</b> &nbsp; Training loss <b id="train_loss">-</b></div>
    <canvas id="curve" width="300" height="70"></canvas>
    <canvas id="output" width="300" height="300"></canvas>
    <div id="compare_box">
      <b>Compare</b> up to 8 variants, trained side by side as one vmapped program<br>
      <select id="compare_vary"><option>learning_rate</option><option>activation</option>
        <option>regularization_rate</option><option>batch_size</option></select>
      <input id="compare_values" value="0.003,0.01,0.03,0.1" style="width:11em">
      <button id="compare">compare</button> <button id="compare_off">single</button>
      <canvas id="compare_curves" width="300" height="90"></canvas>
      <div id="members"></div>
    </div>
    <div id="save_box">
      <b>Save as run</b> <input id="run_name" value="playground-run" style="width:10em"> <button id="save">save</button>
      <div id="save_status"></div>
    </div>
  </section>
</main>
"""

PAGE = ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>jaxdl playground</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>{BODY}<script>{SCRIPT}</script>\n</body>\n</html>\n")
